# score kernels: see probe/_twin/score.py for the pure-Python twin.
