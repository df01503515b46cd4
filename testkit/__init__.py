"""What the tests and the benchmarks both use: media made at run time, and waiting for something to happen.

Neither the service nor the client imports it; it is part of the development tree, not of a package.
"""
