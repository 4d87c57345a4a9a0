"""The project's venv for the Python tools (tokenizers from PyPI): made on first use, reused after.

A tool calls ensure("tokenizers") before importing it: when the running interpreter lacks the
package, the tool is run again inside the venv (LLAMATRON_TOOLS_VENV, default .venv-tools at the
repository root), which is created with `python3 -m venv` and `pip install` if it does not exist.
"""
import os
import subprocess
import sys

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def venv_dir():
    return os.environ.get("LLAMATRON_TOOLS_VENV") or os.path.join(ROOT, ".venv-tools")


def ensure(*packages, tool):
    try:
        for p in packages:
            __import__(p)
        return
    except ImportError:
        pass
    venv = venv_dir()
    python = os.path.join(venv, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        sys.exit(f"{tool}: error: {', '.join(packages)} missing from the tools venv {venv}: remove it and run again")
    if not os.path.exists(python):
        print(f"{tool}: making the tools venv {venv} ({', '.join(packages)} from PyPI)", file=sys.stderr)
        try:
            subprocess.run([sys.executable, "-m", "venv", venv], check=True, stdout=subprocess.DEVNULL)
            subprocess.run([python, "-m", "pip", "install", "-q", *packages], check=True)
        except (subprocess.CalledProcessError, OSError) as e:
            sys.exit(f"{tool}: error: cannot make the tools venv {venv} ({e}): needs python3-venv and PyPI, "
                     f"or pip install {' '.join(packages)}")
    os.execv(python, [python, *sys.argv])
