"""Message catalogues: every language has every key, with the same placeholders."""

import string

import pytest

from tcpwatch.errors import UsageError
from tcpwatch.flow import analysis
from tcpwatch.flow.states import Phase
from tcpwatch.i18n import DEFAULT_LANGUAGE, LANGUAGES, catalogue
from tcpwatch.render.explain import mark_key

OTHERS = [code for code in LANGUAGES if code != DEFAULT_LANGUAGE]


def placeholders(template: str) -> set[str]:
    return {
        name for _, name, _, _ in string.Formatter().parse(template) if name is not None
    }


@pytest.mark.parametrize("code", OTHERS)
def test_catalogue_has_every_english_key(code: str):
    reference = set(catalogue(DEFAULT_LANGUAGE).messages)
    keys = set(catalogue(code).messages)
    assert sorted(reference - keys) == [], f"{code} is missing keys"


@pytest.mark.parametrize("code", OTHERS)
def test_catalogue_has_no_unknown_key(code: str):
    reference = set(catalogue(DEFAULT_LANGUAGE).messages)
    keys = set(catalogue(code).messages)
    assert sorted(keys - reference) == [], f"{code} has keys English lacks"


@pytest.mark.parametrize("code", OTHERS)
def test_catalogue_placeholders_match_english(code: str):
    english = catalogue(DEFAULT_LANGUAGE).messages
    for key, template in catalogue(code).messages.items():
        assert placeholders(template) == placeholders(english[key]), key


@pytest.mark.parametrize("code", LANGUAGES)
def test_catalogue_names_every_mark(code: str):
    messages = catalogue(code).messages
    for name in analysis.MARK_NAMES.values():
        key = mark_key(name)
        assert f"mark.{key}" in messages, name
        assert f"explain.{key}" in messages, name
        assert f"count.mark.{key}.one" in messages, name
        assert f"count.mark.{key}.other" in messages, name


@pytest.mark.parametrize("code", LANGUAGES)
def test_catalogue_names_every_phase(code: str):
    messages = catalogue(code).messages
    for phase in Phase:
        assert f"phase.{phase.value}" in messages, phase


@pytest.mark.parametrize("code", LANGUAGES)
def test_catalogue_counted_keys_have_both_forms(code: str):
    keys = catalogue(code).messages
    for key in keys:
        if key.endswith(".one"):
            assert key[: -len("one")] + "other" in keys, key
        if key.endswith(".other"):
            assert key[: -len("other")] + "one" in keys, key


def test_english_mark_words_are_wireshark_names():
    messages = catalogue("en").messages
    for name in analysis.MARK_NAMES.values():
        assert messages["mark." + mark_key(name)] == name


def test_japanese_marks_are_translated():
    english = catalogue("en").messages
    japanese = catalogue("ja").messages
    for name in analysis.MARK_NAMES.values():
        key = "mark." + mark_key(name)
        assert japanese[key] != english[key], key


def test_catalogue_count_chooses_plural():
    english = catalogue("en")
    assert english.count("count.segments", 1) == "1 segment"
    assert english.count("count.segments", 812) == "812 segments"
    assert english.count("count.segments", 1200) == "1,200 segments"


def test_catalogue_count_japanese_has_one_form():
    japanese = catalogue("ja")
    assert japanese.count("count.segments", 1) == "1 セグメント"
    assert japanese.count("count.segments", 3) == "3 セグメント"


def test_catalogue_join_uses_language_separator():
    assert catalogue("en").join(["a", "b"]) == "a, b"
    assert catalogue("ja").join(["a", "b"]) == "a、b"


def test_catalogue_unknown_language_names_value_and_choices():
    with pytest.raises(UsageError) as raised:
        catalogue("xx")
    assert "'xx'" in str(raised.value)
    assert "en, ja" in str(raised.value)


def test_catalogue_unknown_key_raises():
    with pytest.raises(KeyError):
        catalogue("en").text("no.such.key")


@pytest.mark.parametrize("code", LANGUAGES)
def test_catalogue_has_language_name(code: str):
    assert catalogue(code).name
