// Placeholder: this target is being built (see docs/ARCHITECTURE.md).
import SynodCore
