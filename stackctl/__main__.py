import sys

if sys.argv[1:2] in (["help"], ["-h"], ["--help"]):
    from .usage import text  # standard library only: works before the venv exists

    print(text())
    sys.exit(0)

from .cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
