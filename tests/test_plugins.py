"""Open registries: rewards, engines and tasks from other packages' entry points, and `-r module:function`.

The plugins are real distributions: a package folder and a `*.dist-info` with `entry_points.txt`
on PYTHONPATH, found by `importlib.metadata` as an installed package is. Every use goes through a
real `r1` process (`r1 score`, `r1 data`, `r1 grpo`), so it is the installed metadata that counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from r1cli import plugins, rewards
from r1cli.errors import PluginError, R1Error

R1 = str(Path(sys.executable).with_name("r1"))
ROOT = Path(__file__).resolve().parent.parent

PLUGIN = '''
import os


def brevity(max_words: int = 5):
    """1.0 for a completion of at most max_words words, else 0.0."""
    def reward(completion, **_):
        with open(os.environ["R1_TEST_PIDS"], "a") if os.environ.get("R1_TEST_PIDS") else open(os.devnull, "w") as fp:
            fp.write(f"{os.getpid()} {os.getppid()}\\n")
        return 1.0 if len(completion.split()) <= max_words else 0.0
    return reward


def constant():
    """A plugin's `format`, which r1cli's built-in shadows."""
    return lambda completion, **_: 42.0


def twin():
    return lambda completion, **_: 1.0


NOT_A_FACTORY = 3


def shout(n, *, seed=0, words: int = 2, loud: bool = True):
    """Shout a word: the prompt asks for it in capitals.

    More text that `r1 data shout --help` leaves out.
    """
    if words < 1:
        raise ValueError("words must be ≥ 1")
    for i in range(n):
        word = f"w{seed}x{i}"
        yield {"id": f"shout-{seed}-{i}", "prompt": f"Shout {word} {words} times.",
               "answer": " ".join([word.upper() if loud else word] * words)}


def bad_task(n, *, seed=0):
    yield "not a record"


class EchoEngine:
    name = "echo"
    batch_size = 8

    def __init__(self, model, options=None):  # options: r1cli.engines.options.EngineOptions (no fields here)
        self.model_name = model

    def has_chat_template(self):
        return False

    def generate(self, prompts, params, *, keys=None):
        from r1cli.engines import Completion, Generation

        return [Generation(prompt_tokens=1, completions=[Completion(p[::-1], "stop", 1)] * params.n) for p in prompts]
'''

PLUGIN_ENTRY_POINTS = """
[r1cli.rewards]
brevity = r1_test_plugin:brevity
format = r1_test_plugin:constant
twin = r1_test_plugin:twin
not_a_factory = r1_test_plugin:NOT_A_FACTORY

[r1cli.tasks]
shout = r1_test_plugin:shout
bad_task = r1_test_plugin:bad_task

[r1cli.engines]
echo = r1_test_plugin:EchoEngine
"""

BROKEN_ENTRY_POINTS = """
[r1cli.rewards]
broken = r1_test_broken:reward
twin = r1_test_broken:twin

[r1cli.tasks]
broken_task = r1_test_broken:generate
"""

MY_REWARDS = '''
def has_answer(completion: str, *, answer: str, **_) -> float | None:
    """1.0 when the gold answer appears in the completion."""
    return 1.0 if answer in completion else 0.0


def batch(completions, **kwargs):
    return [1.0 for _ in completions]


def no_keywords(completion):
    return 1.0


def no_arguments(**_):
    return 1.0


class Scorer:
    def __init__(self, completion, **_):
        pass


NUMBER = 4
'''


def write_dist(site: Path, name: str, module: str, source: str, entry_points: str) -> None:
    (site / module).mkdir(parents=True)
    (site / module / "__init__.py").write_text(textwrap.dedent(source))
    info = site / f"{name.replace('-', '_')}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(entry_points)


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    """A folder with two installed distributions: r1-test-plugin (works) and r1-test-broken (fails to import)."""
    site = tmp_path_factory.mktemp("site")
    write_dist(site, "r1-test-plugin", "r1_test_plugin", PLUGIN, PLUGIN_ENTRY_POINTS)
    write_dist(site, "r1-test-broken", "r1_test_broken", "raise ImportError('r1_test_broken needs numpy 9')\n",
               BROKEN_ENTRY_POINTS)
    return site


@pytest.fixture
def work(tmp_path) -> Path:
    """The folder r1 runs in, holding the user's own reward module (my_rewards.py)."""
    (tmp_path / "my_rewards.py").write_text(MY_REWARDS)
    return tmp_path


def r1(*args: str, site: Path | None, cwd: Path, input: str | None = None,
       env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The `r1` console script (whose sys.path, unlike `python -m`'s, lacks the current folder)."""
    full = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    full.update({"COLUMNS": "200", "NO_COLOR": "1", **(env or {})})
    if site is not None:
        full["PYTHONPATH"] = str(site)
    return subprocess.run([R1, *args], input=input, capture_output=True, text=True, cwd=cwd, env=full,
                          timeout=timeout)


def jsonl(rows) -> str:
    return "".join(json.dumps(r) + "\n" for r in rows)


ROWS = [{"id": "a", "completion": "<think>x</think><answer>4</answer>", "answer": "4"},
        {"id": "b", "completion": "one two three four five six seven", "answer": "8"}]


# ---- the built-ins are entry points too ---------------------------------------------------------


def test_the_builtins_are_declared_in_pyproject_and_installed():
    """pyproject.toml, r1cli.plugins.BUILTIN and the installed metadata list the same entry points;
    a stale install (`make install` not rerun) fails here."""
    from importlib.metadata import distribution

    tomllib = pytest.importorskip("tomllib")

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]
    assert {g: declared[g] for g in plugins.GROUPS} == plugins.BUILTIN
    installed = {g: {ep.name: ep.value for ep in distribution("r1cli").entry_points if ep.group == g}
                 for g in plugins.GROUPS}
    assert installed == plugins.BUILTIN


@pytest.mark.parametrize(("group", "name"), [(g, n) for g, names in plugins.BUILTIN.items() for n in names])
def test_every_builtin_entry_point_loads_to_its_own_definition(group, name):
    """`register` recognises a built-in by module:qualname, so the value must be the definition's own."""
    value = plugins.BUILTIN[group][name]
    module, attr = plugins.split_path(value)
    obj = plugins._import(module, attr, name, "")
    assert f"{obj.__module__}:{obj.__qualname__}" == value


def test_names_are_listed_without_importing_a_reward_module():
    modules = sorted({plugins.split_path(v)[0] for names in plugins.BUILTIN.values() for v in names.values()})
    code = ("import json, sys; from r1cli import rewards, tasks, engines; "
            "names = rewards.names(), list(tasks.TASKS), list(engines.ENGINES); "
            f"print(json.dumps([names, [m for m in {modules!r} if m in sys.modules]]))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "PYTHONPATH": ""})
    names, imported = json.loads(out.stdout)
    assert "accuracy" in names[0] and names[1] == ["countdown", "arithmetic"] and names[2] == ["hf", "vllm", "openai"]
    assert imported == []


def test_register_refuses_a_builtin_name():
    with pytest.raises(ValueError, match="'format' is r1cli's built-in reward"):
        rewards.register("format")(lambda: (lambda completion, **_: 1.0))


# ---- plugin rewards in r1 score ------------------------------------------------------------------


def test_score_uses_a_plugin_reward_with_its_weight_and_parameters(site, work):
    result = r1("score", "-r", "brevity:0.5", "-r", "accuracy", "--reward-arg", "brevity.max_words=6", "-q",
                site=site, cwd=work, input=jsonl(ROWS))
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["rewards"] for r in out] == [{"brevity": 1.0, "accuracy": 1.0}, {"brevity": 0.0, "accuracy": 0.0}]
    assert [r["reward"] for r in out] == [1.5, 0.0]
    assert "Warning" not in result.stderr  # the shadowed `format` is not in use


def test_the_same_name_as_a_builtin_means_the_builtin_with_a_warning(site, work):
    result = r1("score", "-r", "format", "-q", site=site, cwd=work, input=jsonl(ROWS))
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["rewards"]["format"] for line in result.stdout.splitlines()] == [1.0, 0.0]  # not 42
    assert "entry point 'format = r1_test_plugin:constant'" in result.stderr and "r1-test-plugin" in result.stderr
    assert "r1cli's built-in reward" in result.stderr


@pytest.mark.parametrize(("spec", "message", "hint"), [
    ("broken", "reward 'broken' (entry point 'broken = r1_test_broken:reward' (group r1cli.rewards) of "
               "r1-test-broken) cannot be loaded: importing r1_test_broken raised ImportError: r1_test_broken "
               "needs numpy 9", "pip install --force-reinstall r1-test-broken"),
    ("twin", "two plugins provide a reward named 'twin'", "uninstall one of r1-test-broken, r1-test-plugin"),
    ("not_a_factory", "is a int, not a reward factory", "returns the reward function"),
])
def test_a_broken_plugin_fails_only_for_its_own_names(site, work, spec, message, hint):
    result = r1("score", "-r", spec, site=site, cwd=work, input=jsonl(ROWS))
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert message in result.stderr and hint in result.stderr
    # the others still work in the same environment
    ok = r1("score", "-r", "accuracy", "-r", "brevity", "-q", site=site, cwd=work, input=jsonl(ROWS))
    assert ok.returncode == 0, ok.stderr


def test_list_shows_plugins_their_origin_and_the_broken_ones(site, work):
    result = r1("score", "--list", site=site, cwd=work)
    assert result.returncode == 0, result.stderr
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.strip()}
    assert "r1-test-plugin" in rows["brevity"] and "max_words: int = 5" in rows["brevity"]
    assert "r1cli" in rows["accuracy"]
    assert "cannot be loaded" in rows["broken"] and "r1-test-broken" in rows["broken"]


def test_shell_completion_offers_plugin_names(site, work):
    env = {"_R1_COMPLETE": "complete_bash", "COMP_WORDS": "r1 score -r brev", "COMP_CWORD": "3"}
    assert r1(site=site, cwd=work, env=env).stdout.split() == ["brevity"]
    env = {"_R1_COMPLETE": "complete_bash", "COMP_WORDS": "r1 data s", "COMP_CWORD": "2"}
    assert r1(site=site, cwd=work, env=env).stdout.split() == ["shout"]


# ---- -r package.module:function --------------------------------------------------------------------


def test_score_loads_a_function_by_its_dotted_path_from_the_current_folder(work):
    result = r1("score", "-r", "my_rewards:has_answer:2", "-r", "format", site=None, cwd=work,
                input=jsonl([*ROWS, {"id": "c", "completion": "4"}]))
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["rewards"]["my_rewards:has_answer"] for r in out] == [1.0, 0.0, None]
    assert [r["reward"] for r in out] == [3.0, 0.0, 0.0]
    # `answer` is a required keyword of has_answer: the record without one is counted, and noted
    assert "1 records lack 'answer', which my_rewards:has_answer needs" in result.stderr


@pytest.mark.parametrize(("spec", "message"), [
    ("my_rewards:batch", "takes TRL's batch arguments (completions, …): r1 calls a reward once per completion"),
    ("my_rewards:no_keywords", "does not take **keywords"),
    ("my_rewards:no_arguments", "takes no positional argument"),
    ("my_rewards:Scorer", "is a class, not a reward function"),
    ("my_rewards:NUMBER", "is a int, not a reward function"),
    ("my_rewards:missing", "my_rewards has no attribute 'missing'"),
    ("no_such_module:fn", "importing no_such_module raised ModuleNotFoundError"),
    ("my_rewards:has_answer:lots", "bad weight 'lots'"),
])
def test_a_dotted_path_that_is_not_a_reward_is_refused(work, monkeypatch, spec, message):
    monkeypatch.chdir(work)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(work))])
    monkeypatch.delitem(sys.modules, "my_rewards", raising=False)
    with pytest.raises(R1Error) as exc:
        rewards.resolve([spec])
    assert message in exc.value.message
    assert exc.value.hint


def test_a_dotted_path_takes_no_parameters(work, monkeypatch):
    monkeypatch.syspath_prepend(str(work))
    with pytest.raises(R1Error, match="takes no parameters"):
        rewards.resolve(["my_rewards:has_answer"], {"my_rewards:has_answer": {"x": 1}})


@pytest.mark.parametrize(("spec", "expected"), [
    ("my_rewards:fn", ("my_rewards:fn", 1.0)),
    ("pkg.mod:fn:0.5", ("pkg.mod:fn", 0.5)),
    (" pkg.mod:Cls.method : 2 ", ("pkg.mod:Cls.method", 2.0)),
    ("format:0.5", ("format", 0.5)),
])
def test_parse_spec_reads_dotted_paths(spec, expected):
    assert rewards.parse_spec(spec) == expected


@pytest.mark.parametrize("spec", ["format:abc", "pkg.mod:fn:abc", "pkg.mod:fn:inf", "my-mod:fn", "pkg.:fn"])
def test_parse_spec_rejects_bad_paths(spec):
    with pytest.raises(R1Error):
        rewards.parse_spec(spec)


# ---- plugin tasks in r1 data -------------------------------------------------------------------------


def test_data_generates_a_plugin_task_with_its_own_options(site, work):
    result = r1("data", "shout", "-n", "3", "--seed", "1", "--words", "2", "--no-loud", site=site, cwd=work)
    assert result.returncode == 0, result.stderr
    out = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["id"] for r in out] == ["shout-1-0", "shout-1-1", "shout-1-2"] and out[0]["answer"] == "w1x0 w1x0"
    assert "wrote 3 shout tasks (seed 1)" in result.stderr
    usage = r1("data", "shout", "--help", site=site, cwd=work)
    assert "--words" in usage.stdout and "--no-loud" in usage.stdout and "Shout a word" in usage.stdout
    assert "r1-test-plugin" in usage.stdout and "More text" not in usage.stdout
    listing = r1("data", "--help", site=site, cwd=work)
    assert listing.returncode == 0, listing.stderr
    assert all(name in listing.stdout for name in ("countdown", "arithmetic", "shout", "broken_task"))


@pytest.mark.parametrize(("args", "code", "message"), [
    (["shout", "--words", "0"], 1, "words must be ≥ 1"),  # the generator's own check
    (["shout", "--volume", "3"], 2, "No such option: --volume"),
    (["bad_task"], 1, "task 'bad_task' (entry point 'bad_task = r1_test_plugin:bad_task' (group r1cli.tasks) of "
                      "r1-test-plugin) yielded str as record 1"),
    (["broken_task"], 1, "importing r1_test_broken raised ImportError"),
    (["sudoku"], 2, "No such command 'sudoku'"),
])
def test_data_reports_plugin_task_errors(site, work, args, code, message):
    result = r1("data", *args, site=site, cwd=work)
    assert result.returncode == code and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_generate_checks_a_plugin_generator_on_load(monkeypatch):
    from r1cli import tasks

    monkeypatch.setitem(tasks.TASKS.builtin, "unseeded", "textwrap:dedent")
    with pytest.raises(PluginError, match="takes no `seed` keyword"):
        tasks.generate("unseeded", 1)


# ---- plugin engines ----------------------------------------------------------------------------------


def test_get_engine_builds_a_plugin_engine(site, work):
    code = ("from r1cli.engines import ENGINES, SamplingParams, get_engine; eng = get_engine('echo', 'm'); "
            "print(sorted(ENGINES), eng.generate(['abc'], SamplingParams())[0].completions[0].text)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=work,
                         env={**os.environ, "PYTHONPATH": str(site)}, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("] ")[1].strip() == "cba" and "'echo'" in out.stdout


def test_rollout_generates_with_a_plugin_engine(site, work):
    result = r1("rollout", "--engine", "echo", "--template", "none", "-n", "2", "-q", site=site, cwd=work,
                input=jsonl([{"id": "p", "prompt": "abc"}]))
    assert result.returncode == 0, result.stderr
    assert [json.loads(line)["completion"] for line in result.stdout.splitlines()] == ["cba", "cba"]


# ---- r1 grpo: plugin and dotted-path rewards, scored in the reward pool's workers ------------------------


def test_grpo_trains_with_a_plugin_reward_and_a_dotted_path(site, work, tiny_model):
    data = work / "p.jsonl"
    data.write_text(jsonl([{"prompt": "Compute 2 + 3.", "answer": "5"}, {"prompt": "Compute 4 * 2.", "answer": "8"}]))
    pids = work / "pids.txt"
    proc = subprocess.Popen(
        [R1, "grpo", "-m", tiny_model, "--data", str(data), "-r", "brevity", "-r", "my_rewards:has_answer:0.5",
         "--max-steps", "1", "-o", str(work / "run"), "-n", "2", "--batch-size", "4", "--max-completion-length", "8",
         "-q"], cwd=work, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(site), "R1_TEST_PIDS": str(pids)})
    stdout, stderr = proc.communicate(timeout=600)
    assert proc.returncode == 0, stderr
    (row,) = [json.loads(line) for line in (work / "run" / "metrics.jsonl").read_text().splitlines()]
    assert "reward/brevity" in row and "reward/my_rewards:has_answer" in row
    config = json.loads((work / "run" / "r1_config.json").read_text())
    assert config["r1"]["reward"] == ["brevity", "my_rewards:has_answer:0.5"]
    assert config["grpo_config"]["reward_weights"] == [1.0, 0.5]
    scored_in = [tuple(map(int, line.split())) for line in pids.read_text().splitlines()]
    assert len(scored_in) == 4  # 2 prompts × 2 generations
    assert all(pid != proc.pid and parent == proc.pid for pid, parent in scored_in)  # in the pool's workers
