module fiberpeer

go 1.19
