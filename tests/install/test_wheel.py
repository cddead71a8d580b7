"""The built wheel in a fresh venv without extras: what it declares, what it needs, what it runs."""

import os
import pathlib
import subprocess
import sys
import sysconfig
import zipfile

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]
CORE = ("numpy", "scipy", "pyspark", "py4j", "cryptography", "cffi", "_cffi_backend", "pycparser")  # the runtime
# dependencies (and theirs), linked from this environment
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the wheel's code, never a source tree's


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp / "dist"), str(ROOT)], check=True, capture_output=True)
    wheel = next((tmp / "dist").glob("sparkgd-*.whl"))
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = pathlib.Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                       check=True, capture_output=True, text=True).stdout.strip())
    ours = pathlib.Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():  # the core dependencies only: no pyarrow, matplotlib or pandas
        if entry.name.split("-")[0].split(".")[0].lower() in CORE:
            (site / entry.name).symlink_to(entry)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], env=ENV,
                   check=True, capture_output=True)
    return wheel, python, tmp


def test_the_wheel_declares_its_dependencies_and_extras(fresh):
    wheel, _, _ = fresh
    with zipfile.ZipFile(wheel) as z:
        meta = z.read(next(n for n in z.namelist() if n.endswith("METADATA"))).decode()
    requires = [line.split(":", 1)[1].strip() for line in meta.splitlines() if line.startswith("Requires-Dist:")]
    for need in ("pyspark", "numpy", "scipy", "cryptography"):
        assert any(r.startswith(need) and "extra" not in r for r in requires), requires
    assert any(r.startswith("tomli") and 'python_version < "3.11"' in r for r in requires), requires
    assert any(r.startswith("pyarrow") and 'extra == "ml"' in r for r in requires), requires
    assert any(r.startswith("matplotlib") and 'extra == "job"' in r for r in requires), requires


def test_without_extras_the_dataframe_api_names_the_extra(fresh):
    _, python, tmp = fresh
    run = subprocess.run([str(python), "-c", "import sparkgd, sparkgd.rdd; import sparkgd.ml"], cwd=tmp, env=ENV,
                         capture_output=True, text=True)
    assert run.returncode == 1 and "pip install 'sparkgd[ml]'" in run.stderr, run.stderr[-2000:]


def test_without_extras_the_job_writes_the_model_and_metrics(fresh):
    """The installed job, without the repository's jobs/ or conf/ (#21.17): python -m sparkgd.job."""
    _, python, tmp = fresh
    out = tmp / "out"
    env = dict(ENV, PYSPARK_PYTHON=str(python), PYSPARK_DRIVER_PYTHON=str(python), SPARK_LOCAL_IP="127.0.0.1")
    run = subprocess.run([str(python), "-m", "sparkgd.job", "--rows", "2000", "--iterations", "5",
                          "--output", str(out)], cwd=tmp, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert (out / "metrics.json").is_file() and (out / "model" / "metadata.json").is_file()
    assert not (out / "loss.png").exists()
    said = [line for line in run.stdout.splitlines() if line.startswith("wrote ")]
    assert said == [f"wrote {out}/model and {out}/metrics.json"]  # only what it wrote
    warnings = [line for line in run.stderr.splitlines() if "loss.png not written" in line]
    assert len(warnings) == 1 and "sparkgd[job]" in warnings[0]


def test_with_the_ml_extra_the_dataframe_api_imports(fresh):
    _, python, tmp = fresh
    site = pathlib.Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                                       check=True, capture_output=True, text=True).stdout.strip())
    ours = pathlib.Path(sysconfig.get_paths()["purelib"])
    for entry in ours.iterdir():  # what `pip install 'sparkgd[ml]'` adds: pyarrow
        if entry.name.split("-")[0].split(".")[0].lower() == "pyarrow" and not (site / entry.name).exists():
            (site / entry.name).symlink_to(entry)
    code = "from sparkgd.ml import SGDLogisticRegression; print(SGDLogisticRegression)"
    run = subprocess.run([str(python), "-c", code], cwd=tmp, env=ENV, capture_output=True, text=True)
    assert run.returncode == 0 and "SGDLogisticRegression" in run.stdout, run.stderr[-2000:]


def test_the_wheel_ships_the_job_its_defaults_and_an_entry_point(fresh):
    _, python, tmp = fresh
    script = python.parent / "sparkgd-train-linear"
    shown = subprocess.run([str(script), "--print-defaults"], cwd=tmp, env=ENV, capture_output=True, text=True,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout == (ROOT / "conf" / "train_linear.toml").read_text()
    import tomllib

    assert tomllib.loads(shown.stdout)["train"]["iterations"] == 100
    where = subprocess.run([str(python), "-c", "import sparkgd.job.__main__ as m; print(m.__file__)"], cwd=tmp, env=ENV,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert pathlib.Path(where).is_file() and "site-packages" in where  # what spark-submit is handed
    helped = subprocess.run([str(script), "--help"], cwd=tmp, env=ENV, capture_output=True, text=True, timeout=60)
    assert "--print-defaults" in helped.stdout and "--overwrite" in helped.stdout
