"""The parts of benchmarks/serve_bench.py, one per step of a load test.

workload    what is sent: modes, prompts, the per-N request plan
client      one streaming request, and the closed/open loops that send them
stats       client-side summary of a mode, ratios between modes
prometheus  the server's t2l_* metric deltas over a mode
vllm_bench  vLLM's own load tester as a cross-check of the base mode
runner      one run: warm-up, then per N every mode one after another
targets     the project's performance targets judged on a report
report      markdown tables and the plot
"""
