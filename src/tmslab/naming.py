"""One vocabulary for options in Python, YAML/TOML/JSON and on the command line.

Every option has one canonical name, the `TrainConfig` field (`n_features`, `batch_size`, …). Everywhere
a configuration is written — `TrainConfig(...)`, `TrainConfig.from_dict`, a sweep spec, a saved
config.json, `tms train --config` — the same names are accepted, plus:

* the CLI's short aliases `features` → `n_features` and `hidden` → `n_hidden` (`ALIASES`);
* kebab-case spellings (`batch-size`), as the flags are written.

Error messages name options the way the user wrote them: the field name from Python (`n_features`,
`force=True`), the flag on the command line (`--features`, `--force`). The CLI switches the spelling
with `cli_spelling()`; library code formats names with `spelled` and `option`.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator, Mapping
from typing import Any

#: Short aliases accepted wherever a configuration is written (they are the CLI flags' names).
ALIASES = {"features": "n_features", "hidden": "n_hidden"}

#: Flag spellings that are not simply `--` + kebab-case of the field name.
FLAGS = {"n_features": "--features", "n_hidden": "--hidden"}

_CLI: contextvars.ContextVar[bool] = contextvars.ContextVar("tmslab_cli_spelling", default=False)


def canonical(name: str) -> str:
    """'batch-size' → 'batch_size', 'features' → 'n_features'; other names unchanged."""
    canon = name.replace("-", "_")
    return ALIASES.get(canon, canon)


def canonical_keys(data: Mapping[str, Any], where: str = "configuration") -> dict[str, Any]:
    """`data` with canonical keys; a key given twice under two spellings is an error."""
    from tmslab.config import ConfigError

    out: dict[str, Any] = {}
    for key, value in data.items():
        canon = canonical(key) if isinstance(key, str) else key
        if canon in out:
            raise ConfigError(f"{where} option {canon!r} is given twice (as {key!r}).")
        out[canon] = value
    return out


def flag(name: str) -> str:
    """The command-line flag of option `name`: n_features → --features, batch_size → --batch-size."""
    return FLAGS.get(name, "--" + name.replace("_", "-"))


@contextlib.contextmanager
def cli_spelling() -> Iterator[None]:
    """Within this block, error messages name command-line flags instead of Python names."""
    token = _CLI.set(True)
    try:
        yield
    finally:
        _CLI.reset(token)


def in_cli() -> bool:
    return _CLI.get()


def spelled(name: str) -> str:
    """An option's name as the user wrote it: `n_features` from Python, `--features` on the command line."""
    return flag(name) if _CLI.get() else name


def option(name: str, value: Any = True) -> str:
    """How to pass an option: `force=True` from Python, `--force` on the command line."""
    return flag(name) if _CLI.get() else f"{name}={value!r}"


def value_of(name: str, value: Any) -> str:
    """An option with its value, for messages: `--out runs/x` on the command line, `out='runs/x'` in Python."""
    return f"{flag(name)} {value}" if _CLI.get() else f"{name}={str(value)!r}"


def plural(n: int, word: str, words: str | None = None) -> str:
    """'1 restart', '2 restarts' (words: an irregular plural)."""
    return f"{n} {word if n == 1 else (words or word + 's')}"
