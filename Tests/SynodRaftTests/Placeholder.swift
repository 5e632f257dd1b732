import Testing
@Test func placeholderSynodRaftTests() {}
