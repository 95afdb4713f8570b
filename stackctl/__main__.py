import sys

if sys.argv[1:2] in (["help"], ["-h"], ["--help"]):
    from . import usage  # standard library only: works before the venv exists

    print(usage.markdown_table() if sys.argv[2:] == ["--markdown"] else usage.text())
    sys.exit(0)

from .cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
