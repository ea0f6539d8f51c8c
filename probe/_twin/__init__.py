"""Pure-Python twins of the compiled kernels in probe/_kernels/, one module per include file."""
