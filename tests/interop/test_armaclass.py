"""armaclass (an independent Arma config parser) reads back every config we render.

`cargo run -p languard-shared --example render_samples -- DIR` renders sample models,
hostile strings included, into DIR/<sample>/<file> and writes beside each file
<file>.expected.json: the values we put into the model, as plain JSON. Here a parser
that shares no code with ours must yield exactly those values.
"""

import json
import math
import os
import pathlib

import armaclass
import pytest

SAMPLES = pathlib.Path(os.environ.get("LANGUARD_SAMPLES", "target/interop-samples"))


def rendered_files():
    files = sorted(p for p in SAMPLES.glob("*/*") if not p.name.endswith(".json"))
    if not files:
        pytest.fail(f"no rendered samples in {SAMPLES}: run the render_samples example first")
    return files


def normalise(value):
    """armaclass yields dicts for classes, lists for arrays, str/int/float for values."""
    if isinstance(value, dict):
        return {k.lower(): normalise(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def assert_same(actual, expected, path="$"):
    if isinstance(expected, float) or isinstance(actual, float):
        assert math.isclose(float(actual), float(expected), rel_tol=1e-9), path
        return
    if isinstance(expected, dict):
        assert isinstance(actual, dict), path
        assert sorted(actual) == sorted(expected), f"{path}: keys differ"
        for key in expected:
            assert_same(actual[key], expected[key], f"{path}.{key}")
        return
    if isinstance(expected, list):
        assert isinstance(actual, list) and len(actual) == len(expected), path
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_same(a, e, f"{path}[{i}]")
        return
    assert actual == expected, f"{path}: {actual!r} != {expected!r}"


@pytest.mark.parametrize("path", rendered_files(), ids=lambda p: f"{p.parent.name}/{p.name}")
def test_armaclass_reads_back_what_we_rendered(path):
    expected = json.loads(path.with_name(path.name + ".expected.json").read_text("utf-8"))
    parsed = armaclass.parse(path.read_text("utf-8"))
    assert_same(normalise(parsed), normalise(expected))
