"""Twin of probe/_kernels/ring.pxi."""

__all__: list[str] = []
