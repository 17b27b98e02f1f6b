"""The family as networks: `expand --export DIR` configs, `build_model` from a run, a config or a member, and
every built network measured again against the costs its row states."""

import json
import textwrap

import pytest

import scalesearch
from conftest import one_line_error
from scalesearch import UserError
from scalesearch.cost import measure_model_cost
from scalesearch.expansion.export import build_from_config, export_family, load_member_config

# Small enough to build and trace in about a second each: 64 px at φ = 0, 10 classes.
SMALL = dict(alpha=1.2, beta=1.1, gamma=1.15, phis=range(3), base_resolution=64, num_classes=10)
STRUCTURE = {"name", "phi", "depth_mult", "width_mult", "resolution", "dropout"}


@pytest.fixture(scope="module")
def family():
    return scalesearch.expand(**SMALL)


def assert_costs_hold(model, row):
    """The network measured again at its resolution gives exactly the row's figures."""
    assert model.resolution == row.resolution
    cost = measure_model_cost(model, model.resolution).to_dict()
    stated = row.to_dict()
    assert cost["flops"] == stated["flops"] and cost["params"] == stated["params"]
    if "activations" in stated:
        assert cost["activations"] == stated["activations"]


def test_exported_configs_build_members_with_the_costs_their_rows_state(family, tmp_path):
    written = export_family(family, tmp_path / "fam", family=family.meta["family"], meta=family.meta,
                            num_classes=10)
    assert [p.name for p in written] == ["B0.json", "B1.json", "B2.json"]
    for path, row in zip(written, family):
        config = load_member_config(path)
        stated = {k: v for k, v in row.to_dict().items() if k not in STRUCTURE and v is not None}
        assert config["costs"] == stated  # every cost figure of the row, whatever columns it has
        assert (config["family"], config["name"], config["num_classes"]) == ("efficientnet", row.name, 10)
        assert config["coefficients"]["alpha"] == 1.2
        model = scalesearch.build_model(config=path)
        assert model.classifier[0].p == row.dropout  # the member's dropout, not the builder's default
        assert_costs_hold(model, row)


def test_from_run_builds_the_member_expand_lists_at_that_phi(family, tmp_path):
    run = tmp_path / "runs" / "myrun"
    run.mkdir(parents=True)
    (run / "best.json").write_text(json.dumps({"alpha": 1.2, "beta": 1.1, "gamma": 1.15, "budget": 2.0,
                                               "provenance": {"config": {"family": "efficientnet"}}}))
    model = scalesearch.build_model(from_run=run, phi=2, num_classes=10, base_resolution=64)
    row = family[2]
    assert model.member_config["coefficients"]["source"].endswith("best.json")
    assert (model.member_config["depth_mult"], model.member_config["width_mult"]) == (row.depth_mult,
                                                                                      row.width_mult)
    assert str(model) == str(scalesearch.build_model(member=row, family=family))
    assert_costs_hold(model, row)


def test_member_of_an_expand_result(family):
    model = scalesearch.build_model(member=family[1], family=family)  # num_classes from the expand result
    assert model.classifier[1].out_features == 10
    assert_costs_hold(model, family[1])
    by_name = scalesearch.build_model(member=family[1], family="efficientnet", num_classes=10)
    assert str(by_name) == str(model)


def test_preset_member_is_built_by_its_own_family():
    rows = scalesearch.expand(preset="resnet", phis=[0], num_classes=10)
    model = scalesearch.build_model(member=rows[0], family=rows)
    assert model.member_config["family"] == "resnet18"  # not resnet (ResNet-50) at multipliers 1.0
    assert_costs_hold(model, rows[0])


def test_changed_user_family_is_refused(tmp_path):
    source = tmp_path / "model.py"
    source.write_text(textwrap.dedent('''
        from torch import nn

        def build(width_mult, depth_mult, num_classes, dropout=0.0):
            c = max(8, int(round(16 * width_mult / 8)) * 8)
            return nn.Sequential(nn.Conv2d(3, c, 3, 2, 1), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                                 nn.Dropout(dropout), nn.Linear(c, num_classes))
        '''))
    ref = f"{source}:build"
    rows = scalesearch.expand(alpha=1.2, beta=1.1, gamma=1.15, phis=[0, 1], family=ref, base_resolution=32,
                              num_classes=10)
    [path, _] = export_family(rows, tmp_path / "fam", family=ref, meta=rows.meta, num_classes=10)
    config = load_member_config(path)
    assert len(config["source_hash"]) == 64 and config["dropout"] is None
    assert_costs_hold(build_from_config(path), rows[0])
    source.write_text(source.read_text() + "# edited\n")
    with pytest.raises(UserError, match="changed since member φ0 was exported"):
        build_from_config(path)


def test_bad_configs_and_sources_are_one_clear_error(family, tmp_path):
    [path] = export_family(family[:1], tmp_path / "fam", family="efficientnet", meta=family.meta, num_classes=10)
    good = json.loads(path.read_text())
    garbled = tmp_path / "garbled.json"
    garbled.write_text('{"format": "scalesearch-member", ')
    other_version = tmp_path / "v9.json"
    other_version.write_text(json.dumps({**good, "version": 9}))
    no_width = tmp_path / "no-width.json"
    no_width.write_text(json.dumps({k: v for k, v in good.items() if k != "width_mult"}))
    cases = [
        (dict(config=garbled), "not readable JSON"),
        (dict(config=tmp_path / "missing.json"), "no member config at"),
        (dict(config=tmp_path / "fam"), "a directory"),
        (dict(config=other_version), "version 9"),
        (dict(config=no_width), "lacks width_mult"),
        (dict(config={"format": "something else"}), "not a scalesearch member config"),
        (dict(config=path, member=family[0]), "exactly one of"),
        (dict(), "exactly one of from_run=, config=, member=; got none"),
        (dict(config=path, phi=2), "phi= goes with from_run="),
        (dict(config=path, num_classes=1000), "measured with num_classes=10"),
        (dict(config=path, match_budget=True), "match_budget= go with from_run="),
        (dict(member=family[0]), "member= needs family="),
        (dict(from_run=tmp_path / "no-run", phi=1), "no best.json"),
        (dict(from_run=tmp_path / "no-run"), "from_run= needs phi="),
    ]
    for kwargs, needle in cases:
        with pytest.raises(UserError) as exc:
            scalesearch.build_model(**kwargs)
        assert needle in str(exc.value) and "\n" not in str(exc.value), (kwargs, str(exc.value))


def test_expand_export_writes_configs_the_table_describes(cli, in_tmp):
    code, out, err = cli("expand", "--phi", "0..1", "--alpha", "1.2", "--beta", "1.1", "--gamma", "1.15",
                         "--base-resolution", "64", "--num-classes", "10", "--format", "json", "--export", "fam")
    assert code == 0, err
    assert "Wrote 2 member configs to fam" in err
    members = json.loads(out)["members"]
    configs = [load_member_config(in_tmp / "fam" / f"{m['name']}.json") for m in members]
    assert [(c["resolution"], c["costs"]["flops"]) for c in configs] == [(m["resolution"], m["flops"])
                                                                         for m in members]


def test_expand_export_onto_a_file_is_refused_before_any_work(cli, in_tmp):
    (in_tmp / "a-file").write_text("not a directory")
    code, out, err = cli("expand", "--phi", "0", "--export", "a-file")
    assert code == 2
    assert "--export: a-file exists and is not a directory" in one_line_error(err)
    # Probed before the coefficients are read, so before any member is measured.
    code, out, err = cli("expand", "--from", "does-not-exist", "--export", "a-file")
    assert code == 2 and "--export" in one_line_error(err)
