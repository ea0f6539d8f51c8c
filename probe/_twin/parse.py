"""Twin of probe/_kernels/parse.pxi."""

__all__: list[str] = []
