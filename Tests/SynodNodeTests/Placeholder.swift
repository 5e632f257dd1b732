import Testing
@Test func placeholderSynodNodeTests() {}
