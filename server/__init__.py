"""Operations against a Prefect server: a local one (`plan2flow up`/`down`, and the temporary one
a `plan2flow run` starts), deployments and `prefect.yaml`, triggering and listing runs, work
pools, and the agents' health flow.

The runtime (`plan2flow.flows`) never imports this part: a generated flow runs on any worker
without it."""
