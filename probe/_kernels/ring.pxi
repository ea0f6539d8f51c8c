# ring kernels: see probe/_twin/ring.py for the pure-Python twin.
