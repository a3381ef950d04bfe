"""Components and delivery: the software-factory shorthand that decomposition expands into tasks."""

from __future__ import annotations

from .base import Identifier, Matrix, Model, Tag
from .component_spec import ComponentSpec
from .escalation import EscalationPolicy
from .params import AssembleParams, DeployParams, PackageParams, TestParams, ValidateParams
from .tasks import StepFields


class Component(Model):
    """One unit of generated code: expands into `<name>.generate_code` → `.validate` → `.test`."""

    name: Identifier
    description: str = ""
    spec: ComponentSpec = ComponentSpec()
    """The module to generate; its `module` defaults to the component's name."""
    depends_on: list[Identifier] = []
    """Other components whose code this one imports; their code is generated first."""
    matrix: Matrix | None = None
    """Runs the component's `test` step once per combination."""
    validate_params: ValidateParams = ValidateParams()
    test_params: TestParams = TestParams()
    tags: list[Tag] = []
    escalation: EscalationPolicy | None = None
    """What to do when the generated code is not good enough; refines `defaults.escalation`."""


class AssembleStep(StepFields):
    params: AssembleParams = AssembleParams()


class PackageStep(StepFields):
    params: PackageParams = PackageParams()


class DeployStep(StepFields):
    params: DeployParams = DeployParams()


class Delivery(Model):
    """The release chain after the components: `assemble` → `package` → `deploy`.

    A step left out is not generated; the present ones are chained in that order.
    """

    assemble: AssembleStep | None = None
    package: PackageStep | None = None
    deploy: DeployStep | None = None
