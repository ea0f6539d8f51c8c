"""Twin of probe/_kernels/score.pxi."""

__all__: list[str] = []
