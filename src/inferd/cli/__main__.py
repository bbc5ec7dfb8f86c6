"""`python -m inferd.cli`: the `inferd` command without its console script."""

from inferd.cli import app

if __name__ == "__main__":
    app()
