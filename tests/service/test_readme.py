"""The README is the user's manual: it must list every configuration option."""

from scripts.local_stack import ROOT

from fusion_service.config import options_table


def test_readme_lists_every_option_with_its_environment_variable_and_default():
    readme = (ROOT / "README.md").read_text()
    for flag, env, default, _meaning in options_table():
        assert f"| `{flag}` | `{env}` | `{default}` |" in readme, f"README misses {flag}"
