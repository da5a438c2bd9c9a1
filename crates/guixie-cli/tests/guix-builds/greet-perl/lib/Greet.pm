package Greet;
our $VERSION = '1.0';
sub hello { return "hello from perl" }
1;
