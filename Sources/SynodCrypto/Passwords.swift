import Crypto
import CryptoExtras
import SynodStateMachine

/// Password hashing for auth (`PasswordCredential`): PBKDF2-HMAC-SHA256 with a random 16-byte
/// salt and a 32-byte result. Clients hash a new password before it enters the log; the node a
/// client authenticates with checks the password against the stored credential.
public enum Passwords {
    public static let saltBytes = 16
    public static let hashBytes = 32

    /// A credential for `password` with a fresh random salt.
    public static func credential(for password: [UInt8], rounds: UInt32 = AuthLimits.roundsDefault) -> PasswordCredential {
        var salt = [UInt8](repeating: 0, count: saltBytes)
        var rng = SystemRandomNumberGenerator()
        for i in salt.indices { salt[i] = UInt8.random(in: 0...255, using: &rng) }
        return PasswordCredential(salt: salt, hash: derive(password, salt: salt, rounds: rounds, bytes: hashBytes), rounds: rounds)
    }

    /// Whether `password` matches `credential` (compared in constant time). Costs the
    /// credential's rounds of HMAC-SHA256: call it off any event loop.
    public static func matches(_ password: [UInt8], _ credential: PasswordCredential) -> Bool {
        let derived = derive(password, salt: credential.salt, rounds: credential.rounds, bytes: credential.hash.count)
        guard derived.count == credential.hash.count else { return false }
        var diff: UInt8 = 0
        for (a, b) in zip(derived, credential.hash) { diff |= a ^ b }
        return diff == 0
    }

    /// Spends the time a check of `AuthLimits.roundsDefault` rounds takes, for an unknown user
    /// (so the answer's timing does not tell which user names exist).
    public static func checkNothing(_ password: [UInt8]) {
        _ = derive(password, salt: [UInt8](repeating: 0, count: saltBytes), rounds: AuthLimits.roundsDefault, bytes: hashBytes)
    }

    static func derive(_ password: [UInt8], salt: [UInt8], rounds: UInt32, bytes: Int) -> [UInt8] {
        // Rounds are bounded by `AuthLimits.roundsRange` when a credential is applied; the
        // unchecked entry point only allows test credentials below swift-crypto's floor.
        guard let key = try? KDF.Insecure.PBKDF2.deriveKey(from: password, salt: salt, using: .sha256, outputByteCount: max(1, bytes),
                                                            unsafeUncheckedRounds: Int(max(1, rounds))) else { return [] }
        return key.withUnsafeBytes { Array($0) }
    }
}
