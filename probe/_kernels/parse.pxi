# parse kernels: see probe/_twin/parse.py for the pure-Python twin.
