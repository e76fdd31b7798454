"""The step notebooks of the ml_lifecycle pipeline; shipped in the package as `ml_lifecycle.pipelines` so `ml-lifecycle init` can copy them."""
