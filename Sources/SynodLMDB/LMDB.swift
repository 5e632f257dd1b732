import SynodCore
