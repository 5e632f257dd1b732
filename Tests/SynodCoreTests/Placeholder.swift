import Testing
@Test func placeholderSynodCoreTests() {}
