"""Twin of probe/_kernels/aggregate.pxi."""

__all__: list[str] = []
