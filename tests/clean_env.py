"""Code to prepend to a `python -c` script so that some packages cannot be imported in that process."""


def block_imports(*packages: str) -> str:
    """A prelude whose meta-path finder refuses `packages` (and their submodules) with an ImportError."""
    return f'''
import importlib.abc, sys

class _Blocked(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in {packages!r}:
            raise ImportError(f"{{name}} is blocked: this environment must not need it")

sys.meta_path.insert(0, _Blocked())
'''
