"""``python -m evtools``: the same as the ``evtools`` command."""

from .cli import main

if __name__ == "__main__":
    main(prog_name="evtools")
