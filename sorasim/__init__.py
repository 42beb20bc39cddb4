"""A local simulator of Azure OpenAI's Sora 2 videos API and of a managed-identity token endpoint."""

from sorasim.config import SimulatorConfig
from sorasim.server import SoraSimulator

__all__ = ["SimulatorConfig", "SoraSimulator"]
