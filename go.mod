module github.com/prescale/prescale

go 1.26
