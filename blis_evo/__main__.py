"""``python -m blis_evo run [flags]``: the same as the ``blis`` console script."""
from blis_evo.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
