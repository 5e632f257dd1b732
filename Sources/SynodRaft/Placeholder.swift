// Placeholder until the SynodRaft work lands; see issue 3.
import SynodCore
