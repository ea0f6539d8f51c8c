# aggregate kernels: see probe/_twin/aggregate.py for the pure-Python twin.
