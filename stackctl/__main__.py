import os
import sys

if sys.argv[1:2] in (["help"], ["-h"], ["--help"]):
    from . import usage  # standard library only: works before the venv exists

    try:
        print(usage.markdown_table() if sys.argv[2:] == ["--markdown"] else usage.text(), flush=True)
    except BrokenPipeError:  # `./stack help | head`: nobody reads the rest
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    sys.exit(0)

from .cli import main  # noqa: E402

sys.exit(main(sys.argv[1:]))
