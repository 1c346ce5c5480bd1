import json


def test_demo_runs_in_the_home(cli, lab_home):
    result = cli("demo", "--episodes", "60", "--duration", "60", "-j", "2")
    assert result.exit_code == 0, result.output
    assert (lab_home.default_store).is_dir()
    runs = [json.loads(x) for x in lab_home.notebook.read_text().splitlines()]
    demo = next(r for r in runs if r["command"] == "demo")
    assert all(r["parent_run"] == demo["run_id"] for r in runs if r["command"] != "demo")
    # A second demo replaces its own synthetic store.
    assert cli("demo", "--episodes", "60", "--duration", "60", "-j", "2").exit_code == 0


def test_demo_refuses_a_real_store(cli, lab_home):
    (lab_home.default_store / "lab-x" / "ep1").mkdir(parents=True)
    (lab_home.default_store / "lab-x" / "ep1" / "manifest.json").write_text("{}")
    result = cli("demo", "--episodes", "12")
    assert result.exit_code == 1
    assert result.stderr.strip() == (f"Error: {lab_home.default_store}: holds a store that synth did not make; "
                                     "run the demo in another --home")


def test_demo_json_is_one_document(cli, lab_home):
    result = cli("--json", "demo", "--episodes", "60", "--duration", "60", "-j", "2")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert set(payload["test_macro_f1"]) == {"gbt", "gbt_oracle", "cnn", "cnn_oracle"}
    assert payload["compare"]["a"] == "gbt" and payload["compare"]["b"] == "cnn"
