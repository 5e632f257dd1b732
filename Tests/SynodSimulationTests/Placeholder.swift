import Testing
@Test func placeholderSynodSimulationTests() {}
