import Testing
@Test func placeholderSynodLMDBTests() {}
