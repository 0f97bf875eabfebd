"""Recipes: YAML loading, unknown keys, and precedence defaults < recipe < flags."""

import pytest

from r1cli.errors import BadInput
from r1cli.training.config import load_recipe, merge, split_recipe

TRAINER = {"learning_rate", "beta", "seed", "num_generations"}
OWN = {"reward", "dynamic_sampling", "model"}


@pytest.mark.parametrize(("text", "expected"), [
    ("", {}),
    ("learning_rate: 1.0e-6\nbeta: 0.0\n", {"learning_rate": 1e-6, "beta": 0.0}),
    ("r1:\n  reward: [accuracy, format]\n", {"r1": {"reward": ["accuracy", "format"]}}),
])
def test_load_recipe(tmp_path, text, expected):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    assert load_recipe(path) == expected


@pytest.mark.parametrize(("text", "message"), [
    ("- a\n- b\n", "a recipe must be a mapping"),
    ("beta: [1,\n", "invalid YAML"),
])
def test_load_recipe_refuses_bad_files(tmp_path, text, message):
    path = tmp_path / "r.yaml"
    path.write_text(text)
    with pytest.raises(BadInput, match=message):
        load_recipe(path)


def test_missing_recipe_file(tmp_path):
    with pytest.raises(BadInput, match="no such recipe file"):
        load_recipe(tmp_path / "nope.yaml")


def test_split_recipe_routes_keys():
    trainer, own = split_recipe({"beta": 0.04, "r1": {"dynamic-sampling": True}},
                                trainer_fields=TRAINER, own_fields=OWN)
    assert trainer == {"beta": 0.04}
    assert own == {"dynamic_sampling": True}


@pytest.mark.parametrize(("recipe", "message", "hint"), [
    ({"learnin_rate": 1e-6}, "unknown setting 'learnin_rate'", "did you mean 'learning_rate'?"),
    ({"zzz": 1}, "unknown setting 'zzz'", "r1's own settings go under 'r1:'"),
    ({"reward": ["format"]}, "unknown setting 'reward'", "put it under 'r1:'"),
    ({"r1": {"rewards": ["format"]}}, "unknown setting 'r1.rewards'", "did you mean 'reward'?"),
    ({"r1": {"qqq": 1}}, "unknown setting 'r1.qqq'", "settings under 'r1:' are: dynamic_sampling, model, reward"),
    ({"r1": [1]}, "'r1' must be a mapping", None),
])
def test_unknown_keys_are_errors_naming_the_key(recipe, message, hint):
    with pytest.raises(BadInput, match=message) as info:
        split_recipe(recipe, trainer_fields=TRAINER, own_fields=OWN, source="r.yaml")
    assert info.value.message.startswith("r.yaml: ")
    if hint is not None:
        assert hint in info.value.hint


@pytest.mark.parametrize(("layers", "expected"), [
    (({"beta": 0.001}, {"beta": 0.04}, {"beta": 0.1}), {"beta": 0.1}),  # flag wins
    (({"beta": 0.001}, {"beta": 0.04}, {"beta": None}), {"beta": 0.04}),  # flag not given: recipe wins
    (({"beta": 0.001}, None, {}), {"beta": 0.001}),  # defaults
    (({}, {"seed": 0}, {"seed": 3, "beta": 0.0}), {"seed": 3, "beta": 0.0}),  # 0 is a value, not "unset"
])
def test_merge_precedence(layers, expected):
    assert merge(*layers) == expected


def test_rows_of_mixed_types_are_a_clear_error():
    from r1cli.errors import BadInput
    from r1cli.training import run

    assert len(run.dataset([{"answer": "1"}, {"answer": "2"}], what="prompt records", hint="h")) == 2
    with pytest.raises(BadInput, match="the prompt records cannot form one table") as info:
        run.dataset([{"answer": "1"}, {"answer": [1, 2]}], what="prompt records", hint="same types")
    assert info.value.hint == "same types"
