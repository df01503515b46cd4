"""Every YAML file under deploy/ lints clean with deploy/yamllint.yaml."""

from __future__ import annotations

from yamllint import linter
from yamllint.config import YamlLintConfig

from tests.deploy.rendering import DEPLOY


def test_deploy_yaml_lints_clean():
    config = YamlLintConfig(file=str(DEPLOY / "yamllint.yaml"))
    files = sorted(p for p in DEPLOY.rglob("*") if p.suffix in (".yaml", ".yml"))
    assert len(files) > 10, "deploy/ YAML files not found"
    problems = [
        f"{path.relative_to(DEPLOY)}:{problem.line}:{problem.column}: {problem.message}"
        for path in files
        for problem in linter.run(path.read_text(), config, str(path))
    ]
    assert not problems, "\n".join(problems)
