import Testing
@Test func placeholderSynodStateMachineTests() {}
