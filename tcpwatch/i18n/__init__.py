"""Message catalogues: the words of timelines, explanations and verdicts.

Each language is one module in this package, named by its ISO 639-1 code
(``en.py``, ``ja.py``). A module defines:

- ``NAME``: the language's name in that language, for ``--lang`` help;
- ``MESSAGES``: a dict from message key to a ``str.format`` template;
- ``plural(count)``: the plural category of ``count``, ``"one"`` or
  ``"other"``. Counted messages have one key per category
  (``count.segments.one`` and ``count.segments.other``), and every catalogue
  has both keys even when its language does not inflect.

To add a language, copy ``en.py`` to ``<code>.py``, translate the values
(keep every ``{placeholder}``), and add the code to ``LANGUAGES``. The tests
fail while a key or a placeholder is missing.

Verdicts: connection records carry an English ``verdict`` sentence. Views show
that sentence for English and build the sentence for any other language from
the record's facts with the ``verdict.*`` templates, so a translation never
depends on the English wording.
"""

import importlib
from functools import cache
from types import ModuleType

from tcpwatch.errors import UsageError

LANGUAGES = ("en", "ja")
"""Codes of the shipped catalogues, the default first."""
DEFAULT_LANGUAGE = "en"


class Catalogue:
    """The messages of one language, looked up by key."""

    def __init__(self, code: str, module: ModuleType) -> None:
        self.code = code
        self.name: str = module.NAME
        self.messages: dict[str, str] = module.MESSAGES
        self._plural = module.plural

    def text(self, key: str, **values: object) -> str:
        """Return the message ``key`` with ``values`` filled in.

        Raises ``KeyError`` for an unknown key: a missing message is a bug
        that the catalogue tests catch, not something to paper over.
        """
        template = self.messages[key]
        return template.format(**values) if values else template

    def count(self, key: str, count: int, **values: object) -> str:
        """Return the counted message ``key`` in the plural form ``count`` takes."""
        category = self._plural(count)
        return self.text(f"{key}.{category}", n=f"{count:,}", **values)

    def join(self, items: list[str]) -> str:
        """Join list items with the language's separator (``, `` or ``、``)."""
        return self.messages["list.separator"].join(items)

    def __repr__(self) -> str:
        return f"<Catalogue {self.code}>"


@cache
def catalogue(code: str = DEFAULT_LANGUAGE) -> Catalogue:
    """Return the catalogue for language ``code``; raise ``UsageError`` if none."""
    if code not in LANGUAGES:
        raise UsageError(
            f"no messages for language {code!r}; use one of: {', '.join(LANGUAGES)}"
        )
    module = importlib.import_module(f"tcpwatch.i18n.{code}")
    return Catalogue(code, module)
