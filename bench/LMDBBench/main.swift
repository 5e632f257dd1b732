@main struct LMDBBench { static func main() {} }
