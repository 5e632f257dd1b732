// Placeholder until the SynodSimulation work lands; see issue 3.
import SynodCore
