"""The paper's comparisons on one command (`ptacl benchmark`) and the demo (`ptacl demo`).

Every method of the paper's Tables 1 and 2 is a `ptacl` command with a config of the chosen
preset (`presets`, `methods`); `steps.build_steps` lays them out for several seeds over one
prepared store, `run_steps` (`ptacl.benchmark.pipeline`) runs them and reuses finished ones,
`results.collect_results` reads each step's metrics back and `tables.write_tables` writes
side-by-side tables (mean ± sd over seeds [bootstrap CI]), with the paper's UK Biobank figures
beside ours, labelled as reference only. `cohort.check_cohort` refuses, before training, a
store too small for a preset; `demo.run_demo` is `ptacl demo`.
"""
