"""The libyaml parse (issue 13: start-up at 10,000 files) gives the tree the pure parser gives:
the same values and types, the same positions of every key and item; anything it cannot parse
is reported by the pure parser, in its own words and at its own file:line:col."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from channelmgr import yamlfile

ROOT = Path(__file__).resolve().parents[2]


def _same(fast, slow, path=()):
    assert type(fast) is type(slow), path
    if isinstance(slow, dict):
        assert list(fast) == list(slow), path
        assert (fast.lc.line, fast.lc.col) == (slow.lc.line, slow.lc.col), path
        for k in slow:
            assert fast.lc.key(k) == slow.lc.key(k), path + (k,)
            assert fast.lc.value(k) == slow.lc.value(k), path + (k,)
            _same(fast[k], slow[k], path + (k,))
    elif isinstance(slow, list):
        for i in range(len(slow)):
            assert fast.lc.item(i) == slow.lc.item(i), path + (i,)
            _same(fast[i], slow[i], path + (i,))
    else:
        assert fast == slow and repr(fast) == repr(slow), path
        for attr in ("_width", "_prec", "_exp", "_underscore"):
            assert getattr(fast, attr, None) == getattr(slow, attr, None), path + (attr,)


VALID = [p.read_text(encoding="utf-8") for p in sorted((ROOT / "mappings").glob("*.yaml"))] + [
    "a: yes\nb: 010\nc: 1_000\nd: 0o10\ne: 2026-02-30\nf: .5\ng: 1e3\nh: ~\nj: &x {k: 1}\nl: *x\n"
    "m: 12.50\nn: 0x1F\no: -0.0\np: .inf\nq: 'x'\nr: \"y\"\ns: |\n  block\n  text\nt: [1, 2.00, {u: v}]\n",
    "# a comment\nproperty:\n  code: A   # trailing\n\n  name: \"Hotel\"\nlist:\n- 1\n-   2.50\n",
]


@pytest.mark.skipif(yamlfile._CParser is None, reason="ruamel.yaml.clib is not installed")
@pytest.mark.parametrize("text", VALID)
def test_fast_tree_is_the_pure_tree(text):
    fast = yamlfile._load_fast(text)
    assert fast is not yamlfile._SLOW
    _same(fast, yamlfile._yaml().load(io.StringIO(text)))


@pytest.mark.parametrize("text", ["a: 1\na: 2\n", "a:\n\tb: 1\n", "a: b: c\n", "k: [1, 2\n"])
def test_broken_yaml_is_reported_by_the_pure_parser(text):
    assert yamlfile._load_fast(text) is yamlfile._SLOW
    with pytest.raises(yamlfile.YamlFileError) as e:
        yamlfile.load("m.yaml", text)
    (p,) = e.value.problems
    try:
        yamlfile._yaml().load(io.StringIO(text))
    except Exception as pure:
        mark = pure.problem_mark or pure.context_mark
        assert (p.line, p.col) == (mark.line + 1, mark.column + 1)
    assert p.file == "m.yaml"
