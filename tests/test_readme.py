"""The README's first screen and CI agree."""

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_first_bash_block_is_the_two_setup_commands():
    text = (ROOT / "README.md").read_text()
    block = text.split("```bash\n", 1)[1].split("```", 1)[0].strip().splitlines()
    assert len(block) == 2
    assert "pip install" in block[0] and "skvqad demo" in block[0]
    # The tests run with the environment's Python, so that the command also
    # works in a new shell where the environment is not activated.
    assert block[1].strip() == ".venv/bin/python -m pytest"
    # The block sits on the first screen: within the first 25 lines.
    assert text.splitlines().index("```bash") < 25
    assert "README.md" in (ROOT / ".ci" / "run").read_text()
