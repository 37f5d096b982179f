"""`python -m bench`: run every benchmark (for now the fold micro-benchmark)."""

from bench.fold import main

main()
