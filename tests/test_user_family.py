"""`--family path/to/model.py:build`: a user's network searched end to end, and every way it can be broken."""

import csv
import json
import textwrap

import numpy as np
import pytest
import torch

from conftest import one_line_error
from scalesearch.cost import measure_cost
from scalesearch.data import make_synthetic
from scalesearch.families import get_family

# A small network of the user's, written by the test (not the repository's example): separable-conv stages.
USER_MODEL = '''
import math
from torch import nn

SCALESEARCH_PROXY = {"width_mult": 0.5, "depth_mult": 1.0, "resolution": 32}


def width(c, w):
    return max(8, int(round(c * w / 8)) * 8)


def block(cin, cout, stride):
    return nn.Sequential(nn.Conv2d(cin, cin, 3, stride, 1, groups=cin, bias=False), nn.BatchNorm2d(cin),
                         nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


def build(width_mult, depth_mult, num_classes, dropout=0.0):
    c = width(16, width_mult)
    layers = [nn.Conv2d(3, c, 3, 2, 1, bias=False), nn.BatchNorm2d(c), nn.ReLU()]
    for base, repeats in ((32, 1), (64, 2)):
        cout = width(base, width_mult)
        for i in range(math.ceil(repeats * depth_mult - 1e-9)):
            layers.append(block(c, cout, 2 if i == 0 else 1))
            c = cout
    return nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Dropout(dropout), nn.Linear(c, num_classes))
'''


@pytest.fixture(scope="module")
def tiny_npz(tmp_path_factory):
    root = tmp_path_factory.mktemp("user-data")
    x, y = make_synthetic(240, 32, seed=7)
    np.savez(root / "tiny.npz", images=x.numpy(), labels=y.numpy())
    return root / "tiny.npz"


def write_model(directory, text, name="model.py"):
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def grid_args(ref, data, out):
    return ["grid", "--budget", "2x", "--family", ref, "--data", data, "--epochs", "1", "--seeds", "1",
            "--step", "0.2", "--out", out]


def test_user_model_searched_end_to_end(cli, tmp_path, tiny_npz):
    model = write_model(tmp_path, USER_MODEL)
    ref, out = f"{model}:build", tmp_path / "run"
    code, _, err = cli(*grid_args(ref, tiny_npz, out))
    assert code == 0, err
    best = json.loads((out / "best.json").read_text())
    assert best["provenance"]["config"]["family"] == ref
    assert best["provenance"]["proxy"]["width_mult"] == 0.5 and best["provenance"]["proxy"]["resolution"] == 32
    rows = list(csv.DictReader((out / "trials.csv").open()))
    trained = [r for r in rows if r["state"] == "complete"]
    assert trained
    # FLOPs were measured on the user's own module: re-measure the proxy and each trained network here.
    base = measure_cost(ref, width_mult=0.5, depth_mult=1.0, resolution=32, num_classes=6).flops
    for r in trained:
        flops = measure_cost(ref, width_mult=float(r["width_mult"]), depth_mult=float(r["depth_mult"]),
                             resolution=int(r["resolution"]), num_classes=6).flops
        assert int(r["flops"]) == flops
        assert float(r["flops_ratio"]) == pytest.approx(flops / base) and 1.8 <= flops / base <= 2.2

    code, out_json, err = cli("expand", "--phi", "1..2", "--from", out, "--format", "json")
    assert code == 0, err
    table = json.loads(out_json)
    assert table["family"] == ref
    assert [m["phi"] for m in table["members"]] == [1, 2]
    for m in table["members"]:
        with torch.device("meta"):
            built = get_family(ref).build(width_mult=m["width_mult"], depth_mult=m["depth_mult"], num_classes=1000)
        assert m["params"] == sum(p.numel() for p in built.parameters())
        assert m["depth_mult"] == pytest.approx(best["alpha"] ** m["phi"])

    # The model file is part of the experiment: resuming after editing it is refused, before any training.
    model.write_text(USER_MODEL.replace("nn.ReLU()", "nn.GELU()"))
    code, _, err = cli(*grid_args(ref, tiny_npz, out))
    assert code == 2
    assert "family_source" in one_line_error(err)


BROKEN = {
    "syntax error": ("def build(width_mult, depth_mult, num_classes:\n    pass\n", "build", "SyntaxError"),
    "missing function": ("def make(width_mult, depth_mult, num_classes):\n    pass\n", "build",
                         "no function 'build'"),
    "wrong signature": ("def build(w, d):\n    pass\n", "build", "must accept width_mult, depth_mult and num_classes"),
    "raises in build": ("def build(width_mult, depth_mult, num_classes):\n    raise RuntimeError('out of ideas')\n",
                        "build", "raised RuntimeError: out of ideas"),
    "returns a non-module": ("def build(width_mult, depth_mult, num_classes):\n    return 42\n", "build",
                             "returned a int, not a torch.nn.Module"),
    "fails on forward": ("from torch import nn\n"
                         "def build(width_mult, depth_mult, num_classes):\n"
                         "    return nn.Sequential(nn.Flatten(), nn.Linear(3 * 64 * 64, num_classes))\n",
                         "build", "fails on a 2x3x32x32 input"),
    "wrong output": ("from torch import nn\n"
                     "def build(width_mult, depth_mult, num_classes):\n"
                     "    return nn.Conv2d(3, num_classes, 3)\n", "build", "expected logits of shape (2, 6)"),
    "cannot honour a multiplier": ("from torch import nn\n"
                                   "def build(width_mult, depth_mult, num_classes):\n"
                                   "    if depth_mult != 1:\n"
                                   "        raise ValueError('only depth 1')\n"
                                   "    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, num_classes))\n",
                                   "build", "ValueError: only depth 1"),
    "raises on import": ("raise ImportError('needs timm')\n", "build", "ImportError: needs timm"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_model_file_is_one_line_before_training(cli, tmp_path, tiny_npz, case):
    text, function, message = BROKEN[case]
    model = write_model(tmp_path, text)
    out = tmp_path / "run"
    code, _, err = cli(*grid_args(f"{model}:{function}", tiny_npz, out))
    assert code == 2
    line = one_line_error(err)
    assert message in line and str(model) in line
    assert not (out / "trials.csv").exists() and not (out / "study.db").exists()  # nothing was trained


@pytest.mark.parametrize("ref, message", [
    ("missing/model.py:build", "no such file missing/model.py"),
    ("no_such_package_xyz.models:build", "no module named 'no_such_package_xyz.models'"),
    ("model.py:", "write path/to/model.py:build"),
    ("resnet-nope", "unknown family 'resnet-nope'"),
])
def test_unloadable_reference_is_one_line(cli, tmp_path, tiny_npz, ref, message):
    code, _, err = cli(*grid_args(ref, tiny_npz, tmp_path / "run"))
    assert code == 2
    assert message in one_line_error(err)


def test_every_command_validates_family_the_same_way(cli, tmp_path, tiny_npz):
    model = write_model(tmp_path, BROKEN["wrong signature"][0])
    ref = f"{model}:build"
    commands = [
        grid_args(ref, tiny_npz, tmp_path / "g"),
        ["search", "--budget", "2x", "--trials", "2", "--family", ref, "--data", tiny_npz, "--out", tmp_path / "s"],
        ["compare", "--budget", "2x", "--family", ref, "--data", tiny_npz, "--out", tmp_path / "c"],
        ["train", "--family", ref, "--data", tiny_npz, "--epochs", "1"],
        ["flops", "--family", ref],
        ["expand", "--phi", "1", "--alpha", "1.2", "--beta", "1.1", "--gamma", "1.15", "--family", ref],
    ]
    lines = set()
    for args in commands:
        code, _, err = cli(*args)
        assert code == 2, (args[0], err)
        lines.add(one_line_error(err))
    assert len(lines) == 1, lines


def test_module_reference_and_optional_keywords(cli, tmp_path, monkeypatch):
    package = tmp_path / "mypkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    write_model(package, USER_MODEL, "nets.py")
    write_model(package, "from torch import nn\nSEEN = []\n"
                         "def build(width_mult, depth_mult, num_classes, **kwargs):\n"
                         "    SEEN.append(kwargs)\n"
                         "    return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(3, num_classes))\n",
                "kw.py")
    monkeypatch.syspath_prepend(str(tmp_path))
    code, out, err = cli("flops", "--family", "mypkg.nets:build", "--width-mult", "0.5", "--resolution", "32",
                         "--num-classes", "6", "--json")
    assert code == 0, err
    assert json.loads(out)["params"] == measure_cost(f"{package / 'nets.py'}:build", width_mult=0.5, depth_mult=1.0,
                                                     resolution=32, num_classes=6).params
    spec = get_family("mypkg.kw:build")
    spec.build(width_mult=1.0, depth_mult=1.0, num_classes=3, dropout=0.3, stochastic_depth=0.1)
    import mypkg.kw

    assert mypkg.kw.SEEN[-1] == {"dropout": 0.3, "stochastic_depth": 0.1}
    # USER_MODEL names `dropout` but not `stochastic_depth`: it gets only what it asks for.
    model = get_family("mypkg.nets:build").build(width_mult=1.0, depth_mult=1.0, num_classes=3, dropout=0.25,
                                                  stochastic_depth=0.1)
    assert model[-2].p == 0.25


def test_cost_cache_keys_include_the_source(tmp_path):
    """Same path, same multipliers, different code: never a stale cached cost."""
    model = write_model(tmp_path, USER_MODEL)
    ref = f"{model}:build"
    first = measure_cost(ref, width_mult=1.0, depth_mult=1.0, resolution=32, num_classes=6)
    model.write_text(USER_MODEL.replace("((32, 1), (64, 2))", "((32, 1), (64, 3))"))
    second = measure_cost(ref, width_mult=1.0, depth_mult=1.0, resolution=32, num_classes=6)
    assert second.flops > first.flops and second.params > first.params
    other = write_model(tmp_path, USER_MODEL.replace("ReLU()", "ReLU6()"), "other.py")
    assert measure_cost(f"{other}:build", width_mult=1.0, depth_mult=1.0, resolution=32, num_classes=6) \
        is not first
    assert get_family(ref).source_hash != get_family(f"{other}:build").source_hash
