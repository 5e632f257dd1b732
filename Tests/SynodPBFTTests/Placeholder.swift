import Testing
@Test func placeholderSynodPBFTTests() {}
