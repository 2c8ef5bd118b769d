module mapguard.test

go 1.21
